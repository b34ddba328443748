"""twistd plugin: ``twistd -n abook -c FILE``. All logic lives in abook.tap."""

from twisted.application.service import ServiceMaker

abook = ServiceMaker("abook", "abook.tap", "CRM address books over LDAP, email tracking and routing", "abook")
